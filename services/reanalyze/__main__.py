import sys

from services.reanalyze.main import main

sys.exit(main())
