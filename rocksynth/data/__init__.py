"""rocksynth.data"""
