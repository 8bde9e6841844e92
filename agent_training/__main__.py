from agent_training.cli import main

main()
