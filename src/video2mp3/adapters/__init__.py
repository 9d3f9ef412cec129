"""Adapters: the technology behind each port, one module per technology.

Only an adapter imports its library (pymongo, pika, smtplib...), and it translates that library's
errors into ``video2mp3.errors``.
"""
