from oasl.cli import main

main()
