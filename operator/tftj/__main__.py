import sys

from tftj.cli import main

sys.exit(main())
