import sys

from ddpm.cli.main import main

sys.exit(main())
