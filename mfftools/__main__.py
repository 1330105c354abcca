from mfftools.cli import main

main()
