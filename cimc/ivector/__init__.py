"""cimc.ivector"""
