// The SMP client, management groups and workflows.
