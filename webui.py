"""Start glazeish's local web page: ``python webui.py [--host H] [--port P] [--share] [--models DIR]``.

The page itself lives in :mod:`glazeish.ui` (also started by ``glazeish ui``).
"""

from glazeish.ui import main

if __name__ == "__main__":
    main()
