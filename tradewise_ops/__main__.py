from tradewise_ops.cli.main import main

main()
