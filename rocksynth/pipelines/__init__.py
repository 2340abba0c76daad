"""rocksynth.pipelines"""
