def convert():
    """placeholder replaced below"""
