#!/bin/sh
# A mod_fcgid wrapper (examples/fcgid.conf): Apache runs this file (chmod +x) with a listening
# socket on fd 0. exec, so that mod_fcgid's SIGTERM reaches fcgi serve and not a shell.
exec /usr/bin/node /var/www/node_modules/fcgi/dist/src/cli.js serve /var/www/app.js
