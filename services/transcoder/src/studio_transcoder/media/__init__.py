"""FFmpeg and ffprobe: probing a source, planning and running the one-pass ladder."""
