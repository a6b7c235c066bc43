from paperkd.cli import main

raise SystemExit(main())
