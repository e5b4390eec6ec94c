// Send the assertion on at once (a script file: the page's policy allows no inline script).
document.getElementById("handoff").submit();
