"""Imported by a sandbox child as it boots (``test_sandbox``): leaves a mark where the
``SANDBOX_BOOT_MARK`` variable says, so a test can tell whether the child has booted."""

import os
from pathlib import Path

Path(os.environ["SANDBOX_BOOT_MARK"]).touch()
