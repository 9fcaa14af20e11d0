"""cimc.cluster"""
