"""A Salesforce-compatible org served over HTTPS on loopback: the demo's default and every sync test's peer."""
