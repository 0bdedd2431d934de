from netboot.cli import main

main()
