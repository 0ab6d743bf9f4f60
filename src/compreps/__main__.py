from compreps.cli import main

raise SystemExit(main())
