import sys

from docteur.ninep.cli import main

sys.exit(main())
