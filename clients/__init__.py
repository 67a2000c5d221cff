"""A platform's side: data adapters, merchant consent, privacy ledger and the Flower ClientApp."""
