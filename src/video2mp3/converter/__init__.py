"""The converter: takes ``conversion.requested``, probes and converts with ffmpeg, stores the MP3.

Media is hostile input. ``media`` probes it in a separate process under format and protocol
whitelists and runs ffmpeg as a subprocess with a timeout and resource limits, so a crafted file
can neither read local files nor reach the network nor take the worker down.
"""
