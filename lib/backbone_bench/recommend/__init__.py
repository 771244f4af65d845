"""Stage 7, the study's question on a user's own images: the command's settings (settings.py), the
run (run.py: screen, fine-tune, scratch twin) and the report it writes (advice.py).

May import every earlier stage.
"""
