"""rocksynth.properties"""
