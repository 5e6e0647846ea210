#!/bin/sh
# A stand-in for /usr/games/cowsay: the same shape of output, no package needed.
msg="$*"
line=$(echo "$msg" | sed 's/./-/g')
echo " -$line-"
echo "< $msg >"
echo " -$line-"
echo '        \   ^__^'
echo '         \  (oo)\_______'
echo '            (__)\       )\/\'
echo '                ||----w |'
echo '                ||     ||'
