"""A realtime speech-to-speech backend's foundation: the OpenAI Realtime event protocol and a client for it.

Not wired into the engine yet; see docs/realtime.md.
"""
