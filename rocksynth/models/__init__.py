"""rocksynth.models"""
