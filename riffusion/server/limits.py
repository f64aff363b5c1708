"""The server's limits on what a request may ask for and send (docs/api.md, "Limits"), in one
place for the request schemas, the HTTP middleware and `riffusion serve`'s options."""

from __future__ import annotations

import math

MAX_GUIDANCE = 30.0
MAX_STEPS = 150
MAX_PROMPT_CHARS = 1000
MAX_ID_CHARS = 100
MAX_CLIPS_AHEAD = 10

#: How far outside [0, 1] a fraction may stray and still be taken, as the nearest bound. Sums of
#: float steps land a hair outside (0.05 added twenty times is 1.0000000000000002), and the
#: original web app moves its alpha by adding such steps.
FRACTION_TOLERANCE = 1e-6

#: Largest studio upload, decoded, bytes (a minute of 16-bit stereo WAV at 44.1 kHz is about
#: 10 MB; the studio's clips are at most 10.24 s).
MAX_UPLOAD_BYTES = 12 * 2**20
#: Longest data URL of an upload: MAX_UPLOAD_BYTES in base64, with room for its header.
MAX_DATA_URL_CHARS = 4 * math.ceil(MAX_UPLOAD_BYTES / 3) + 2**20
#: Largest request body taken by default (`serve --max-body-mb`): the longest data URL and a
#: megabyte for the rest of its JSON: 18 MB.
DEFAULT_MAX_BODY_BYTES = MAX_DATA_URL_CHARS + 2**20
