"""cimc.metrics"""
