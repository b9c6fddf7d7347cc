"""Write-back: push model values (health score, eCSAT, chosen enrichments) to Account fields, opt-in."""
