"""The holdout: a share of readers who get the editor's newsletter, so personalisation can be measured.

Membership is stable per reader, not drawn per edition: a reader is in the holdout when a
salted hash of their public id falls below the share. Why stable:

- it measures what the issue asks for, the cumulative effect of learning across editions. A
  per-edition draw would put readers in the holdout whose profiles were shaped by the
  personalised editions they got before, so the two arms would differ by one edition at most
  and the comparison would understate (or mislead about) what learning adds;
- a reader's experience stays consistent: no newsletter that flips between "chosen for you"
  and "the same for everyone" from one week to the next;
- it needs no state: any process, a resumed send or the evaluation harness finds the same
  members from the public id alone, and raising the share only adds readers (those below the
  new threshold), it never moves a reader out.

The salt keeps membership independent of anything else derived from the public id (tokens,
the policy's random streams). Changing HOLDOUT_SALT draws a new holdout; do it deliberately,
e.g. when a measurement period ends. Holdout readers still learn from what they are shown, so
when they leave the holdout their profile is not empty.

Membership travels with every message: PlannedEntry.holdout in the send ledger and the
`holdout` custom arg sent to SendGrid, which comes back on each engagement event.
"""

from __future__ import annotations

import hashlib
import math

from pipeline.audience.profile import Profile
from pipeline.errors import ConfigurationError

__all__ = ["DEFAULT_HOLDOUT_SHARE", "HOLDOUT_SALT", "check_share", "holdout_position", "in_holdout"]

HOLDOUT_SALT = "readerfirst-holdout-1"
DEFAULT_HOLDOUT_SHARE = 0.1
_SCALE = float(1 << 64)


def check_share(share: float, name: str = "holdout_share") -> float:
    """`share` if it is a number from 0 to 1; raises ConfigurationError naming `name` otherwise."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or math.isnan(share) or not 0 <= share <= 1:
        raise ConfigurationError(f"{name}={share!r}: must be a share from 0 to 1 (0.1 is 10% of readers)")
    return float(share)


def holdout_position(reader_key: str, *, salt: str = HOLDOUT_SALT) -> float:
    """Where the reader falls in [0, 1): the same in every process and every edition."""
    digest = hashlib.blake2b(reader_key.encode(), digest_size=8, key=salt.encode()).digest()
    return int.from_bytes(digest, "big") / _SCALE


def in_holdout(profile: Profile, share: float, *, salt: str = HOLDOUT_SALT) -> bool:
    """Whether the reader belongs to a holdout of `share` (keyed by public id, or reader id without one)."""
    if share <= 0:
        return False
    return holdout_position(profile.public_id or str(profile.reader_id), salt=salt) < share
