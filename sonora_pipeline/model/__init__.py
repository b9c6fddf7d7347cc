"""The customer model: tables in schema `sonora` built from the Salesforce mirror and the settings file."""
