"""cimc.data"""
