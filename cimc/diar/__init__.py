"""cimc.diar"""
