from hyperlocal.cli import main

raise SystemExit(main())
