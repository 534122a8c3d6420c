from tiergate import create_app

app = create_app()
