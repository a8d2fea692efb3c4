"""python -m rwkv_eval.report"""

import sys

from . import main

sys.exit(main())
