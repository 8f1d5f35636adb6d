"""Media's service logic, one module per use case; routes and subscribers call it.

``uploads`` (presign, multipart, verify), ``playback`` (issue a URL, serve the
files behind it), ``folders`` (an episode's HLS folders, ADR 6), ``cleanup``
(abandoned uploads) and ``presence`` (ready episodes whose files are gone).
"""
