"""video2mp3: a self-hosted video-to-MP3 conversion service.

Four services share this package: ``auth`` (users, JWTs), ``gateway`` (HTTP API, jobs, blobs),
``converter`` (ffmpeg worker) and ``notifier`` (email). ``domain`` and ``ports`` hold what they
agree on; ``adapters`` hold the technology behind each port.
"""
