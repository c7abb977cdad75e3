//! Sans-IO ZMTP 3.1 protocol core (being written): greeting, framing, commands, NULL handshake.
