import sys

from services.replay.main import main

sys.exit(main())
