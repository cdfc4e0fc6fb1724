"""The HTTP face: create_app (app.py), its hooks and blueprints, the error table, the console and
the OpenAPI document. The only package that imports flask, werkzeug, flask-cors, flask-limiter
and swagger-ui; it reaches Redis only through a core.store.Store.
"""
