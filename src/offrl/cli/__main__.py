"""python -m offrl.cli"""

from offrl.cli import main

main()
