"""cimc.features"""
