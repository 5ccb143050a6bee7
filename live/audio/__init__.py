"""Audio plumbing: PCM/WAV, resampling, level envelopes and VAD end-pointing."""
