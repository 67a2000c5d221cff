"""Who may call the bank: its certificate authority, the callers' identities and roles, the
revocation list, the gRPC guard that checks every call, and the log of what each caller did."""
