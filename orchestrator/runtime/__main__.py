import sys

from .attempt import main

sys.exit(main())
