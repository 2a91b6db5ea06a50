from lab.app.cli import main

main()
