def info():
    """placeholder replaced below"""
