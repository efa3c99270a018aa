module github.com/pimhook/pimhook

go 1.26
