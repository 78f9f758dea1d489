s/[0-9,]+ bytes$/N bytes/
