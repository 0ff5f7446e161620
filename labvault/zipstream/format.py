"""The zip records this library reads and writes (PKWARE APPNOTE 6.3), in one place.

Shared by the writer (`writer`), the directory and entry readers (`directory`, `entries`) and
any one-pass check built on them, so they agree on every field by construction.
"""

from __future__ import annotations

import struct

STORED = 0
DEFLATED = 8

LOCAL = struct.Struct("<IHHHHHIIIHH")
CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
DESCRIPTOR32 = struct.Struct("<IIII")
DESCRIPTOR64 = struct.Struct("<IIQQ")
ZIP64_END = struct.Struct("<IQHHIIQQQQ")
ZIP64_LOCATOR = struct.Struct("<IIQI")
END = struct.Struct("<IHHHHIIH")

LOCAL_SIGNATURE, CENTRAL_SIGNATURE, DESCRIPTOR_SIGNATURE = 0x04034B50, 0x02014B50, 0x08074B50
ZIP64_END_SIGNATURE, ZIP64_LOCATOR_SIGNATURE, END_SIGNATURE = 0x06064B50, 0x07064B50, 0x06054B50
ZIP64_EXTRA = 0x0001
EXTENDED_TIME_EXTRA = 0x5455  # "UT": Info-ZIP's extended timestamp, UTC seconds since 1970
FLAG_ENCRYPTED, FLAG_DESCRIPTOR, FLAG_UTF8 = 0x01, 0x08, 0x800
LIMIT32, LIMIT16 = 0xFFFFFFFF, 0xFFFF
