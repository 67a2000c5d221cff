"""The bank's operations dashboard in the browser (issue 15): `yinqi bank dashboard`."""
