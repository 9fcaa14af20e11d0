"""cimc.sv"""
